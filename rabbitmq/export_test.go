package rabbitmq

// Hooks for the external tests (package rabbitmq_test), compiled only
// into tests.

// CutAfterNextSend makes p cut its TCP connection right after its next
// send, so that the message is certainly unconfirmed when the connection
// dies.
func CutAfterNextSend(p *Publisher) { p.cutAfterSend.Store(true) }

// CutConnection cuts c's TCP connection, as a broker crash would.
func CutConnection(c *Consumer) { c.tcp.cut() }

// Sessions counts the connections c has established.
func Sessions(c *Consumer) uint64 { return c.sessions.Load() }

// GobBatchLen exposes the gob framing reader to the fuzz test.
var GobBatchLen = gobBatchLen

// AssignVersions exposes the versioning of records sent without one.
var AssignVersions = assignVersions
