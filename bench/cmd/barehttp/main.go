// Command barehttp is the yardstick of the read benchmark: a bare net/http
// server answering every GET /users/{id} with one constant user in the
// API's envelope, so that wrk measures HTTP alone.
package main

import (
	"flag"
	"log"
	"net/http"
)

const user = `{"status":"success","data":{"id":1,"first_name":"Zoltán","last_name":"O'Brien",` +
	`"email_address":"zoltan.obrien.1@example.com","created_at":"2024-07-02T06:57:41.803Z",` +
	`"deleted_at":null,"merged_at":null,"parent_user_id":null}}`

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	body := []byte(user)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, mux))
}
