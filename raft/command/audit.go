package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file audit.go -o audit_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "github.com/rls-hie/rls/raft/model"

// AuditAppend appends audit entries, in order, to the replicated audit log; the FSM
// numbers and chains them and skips any whose ID it already holds. ClusterKey, when set and
// the state holds none yet, becomes the secret nodes authenticate their internal calls
// with (drawn by the leader, so Apply stays deterministic).
type AuditAppend struct {
	Entries    []model.AuditEntry `json:"entries"`
	ClusterKey []byte             `json:"cluster_key,omitempty"`
}
