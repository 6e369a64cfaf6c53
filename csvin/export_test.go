package csvin

// NewReaderLimit is NewReader with a chosen bound on the bytes of one
// record, so tests can reach the bound with small inputs.
var NewReaderLimit = newReader
