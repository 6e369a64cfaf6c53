package config

import (
	"fmt"
	"strings"
)

// Roles are the parts one consumer process runs. Ingest takes batches from
// RabbitMQ into Postgres and Redis; API serves the HTTP API. Both is the
// default (one process does everything); split, ingest workers and API
// replicas scale apart, and an API-only process needs no RabbitMQ.
type Roles struct {
	Ingest bool
	API    bool
}

// AllRoles is the default: ingest and API in one process.
var AllRoles = Roles{Ingest: true, API: true}

// String lists the roles as ParseRoles reads them: "ingest,api", "ingest"
// or "api".
func (r Roles) String() string {
	var names []string
	if r.Ingest {
		names = append(names, "ingest")
	}
	if r.API {
		names = append(names, "api")
	}
	return strings.Join(names, ",")
}

// ParseRoles reads a comma-separated list of roles (ingest, api; case and
// spaces ignored, repeats allowed). It must name at least one.
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for name := range strings.SplitSeq(s, ",") {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "ingest":
			r.Ingest = true
		case "api":
			r.API = true
		case "":
		default:
			return Roles{}, fmt.Errorf("unknown role %q: the roles are ingest and api (comma-separated, e.g. ingest,api)", strings.TrimSpace(name))
		}
	}
	if !r.Ingest && !r.API {
		return Roles{}, fmt.Errorf("no role given: name ingest, api or both (ingest,api)")
	}
	return r, nil
}
