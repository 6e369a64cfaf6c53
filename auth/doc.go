// Package auth tells who is calling and what their role allows, whatever
// the transport: the HTTP layer hands it the bearer token or the session
// cookie and maps its errors (viswals.EUNAUTHENTICATED: 401 with
// WWW-Authenticate: Bearer; viswals.EFORBIDDEN: 403).
//
// # Roles
//
// A Principal has one Role: reader (emails masked as a***@example.com),
// pii (emails decrypted), admin (as pii, plus metrics and operators'
// views). The Role methods SeesEmails, MayOperate and ShowEmail are the
// only place that says which role sees what.
//
// # Bearer tokens
//
// Authenticator.Authenticate takes the token of "Authorization: Bearer
// <token>" (BearerToken extracts it from the header). Tokens longer than
// MaxTokenBytes are refused before any parsing. A token that starts with
// KeyPrefix is an API key; any other is taken as an OIDC JWT.
//
// # API keys
//
// GenerateKey makes a key: KeyPrefix followed by the unpadded base64url of
// 32 random bytes. The key is shown once; the keys file (API_KEYS_FILE)
// keeps only its SHA-256, one key a line:
//
//	# NAME ROLE SHA256-HEX
//	ci-reader reader 3f0a…(64 hex digits)
//
// Fields are separated by spaces or tabs. Blank lines and lines whose
// first non-blank character is '#' are ignored. NAME is 1 to 64 ASCII
// letters, digits, '.', '_' or '-' and is unique in the file; it names the
// caller in logs. A malformed line is reported with its line number and
// never with its content, in case a key was pasted there by mistake.
//
// KeyFile re-reads the file when it changes (checked at most once every
// KeyFileOptions.CheckEvery, on lookup), so deleting a line revokes its
// key within that interval. If the file becomes unreadable, every key is
// refused until it is readable again; a malformed line refuses its own key
// only, and the error is logged. Append to the file, or replace it whole
// (write a new file, then rename it over the old one): a check that
// catches a file half rewritten in place refuses the keys it cannot read
// until the next check. A presented key is matched exactly: no trimming
// and no case folding.
//
// # OIDC
//
// OIDC verifies JWTs issued by OIDCConfig.Issuer (OIDC_ISSUER) for
// OIDCConfig.Audience (OIDC_AUDIENCE). The issuer's discovery document
// names its JWKS; the keys are cached and fetched again when a token names
// a key id that is not cached, at most once every OIDCConfig.MinRefresh so
// that tokens with made-up key ids cannot turn into a flood of requests to
// the issuer. Only RS256 and ES256 signatures are accepted. iss and aud
// must match; exp is required; exp and nbf are checked with
// OIDCConfig.Leeway for clock skew. The subject (sub) is the Principal's
// name.
//
// The role comes from the claim OIDCConfig.RoleClaim (OIDC_ROLE_CLAIM,
// default "role"): a string, or an array of strings. The claim is looked
// up by its exact name first; if there is none and the name has dots, as a
// path into nested objects ("realm_access.roles"). Values that are not
// role names are ignored and the highest role among the rest is taken
// (admin > pii > reader), so a token carrying ["reader", "admin"] is an
// admin. A valid token with no known role is refused with EFORBIDDEN.
//
// # Sessions
//
// Sessions turns a Principal into a signed, expiring token for the web
// page's cookie (HMAC-SHA256 under emailcrypt's Keyring.SessionKey) and
// back. A session never outlives the credential it was issued for
// (Principal.Expires). Authenticator.Recheck tells whether a session's API
// key is still in the keys file, so that revoking a key ends its sessions.
package auth
