package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rls-hie/rls/search"
)

// Buckets of the document registry. The Bleve index is derived from them.
var (
	bucketDocuments        = []byte("documents")           // id → StoredDocument
	bucketDocumentsChanged = []byte("documents_changed")   // raft index (8 bytes) + id → empty
	bucketDocumentsMaster  = []byte("documents_by_master") // master identifier token → id

	documentBuckets = [][]byte{bucketDocuments, bucketDocumentsChanged, bucketDocumentsMaster}
)

// StoredDocument is a registered document's metadata as the replicated state keeps it.
type StoredDocument struct {
	Document search.Document `json:"document"`
	// Resource is the DocumentReference as the holder sent it (without id and meta).
	Resource   []byte    `json:"resource,omitempty"`
	Version    uint64    `json:"version"`
	Registered time.Time `json:"registered"`
	Updated    time.Time `json:"updated"`
	// Index is the Raft index of the entry that last changed it: the derived search index
	// catches up from documents_changed by it.
	Index uint64 `json:"index"`
}

// Document returns a stored document, or ok=false.
func (t *Tx) Document(id string) (StoredDocument, bool, error) {
	var d StoredDocument
	v := t.tx.Bucket(bucketDocuments).Get([]byte(id))
	if v == nil {
		return d, false, nil
	}
	if err := json.Unmarshal(v, &d); err != nil {
		return d, false, fmt.Errorf("decode document %s: %w", id, err)
	}
	return d, true, nil
}

// DocumentIDByMaster returns the id of the document with a master identifier.
func (t *Tx) DocumentIDByMaster(token string) (string, bool) {
	v := t.tx.Bucket(bucketDocumentsMaster).Get([]byte(token))
	return string(v), v != nil
}

func changedKey(index uint64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, index), id...)
}

// PutDocument stores a document changed by the entry at d.Index, and files it in the
// change index (dropping its previous place there).
func (t *Tx) PutDocument(d StoredDocument) error {
	id := d.Document.ID
	docs, changed := t.tx.Bucket(bucketDocuments), t.tx.Bucket(bucketDocumentsChanged)
	if old, ok, err := t.Document(id); err != nil {
		return err
	} else if ok {
		if err := changed.Delete(changedKey(old.Index, id)); err != nil {
			return fmt.Errorf("unfile document %s: %w", id, err)
		}
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode document %s: %w", id, err)
	}
	if err := docs.Put([]byte(id), v); err != nil {
		return fmt.Errorf("store document %s: %w", id, err)
	}
	if err := changed.Put(changedKey(d.Index, id), nil); err != nil {
		return fmt.Errorf("file document %s: %w", id, err)
	}
	if !d.Document.MasterIdentifier.IsZero() {
		if err := t.tx.Bucket(bucketDocumentsMaster).Put([]byte(d.Document.MasterIdentifier.Token()), []byte(id)); err != nil {
			return fmt.Errorf("index master identifier of %s: %w", id, err)
		}
	}
	return nil
}

// DocumentsChangedAfter calls fn with the id of every document last changed by an entry
// after index, in index order.
func (t *Tx) DocumentsChangedAfter(index uint64, fn func(id string) error) error {
	c := t.tx.Bucket(bucketDocumentsChanged).Cursor()
	start := binary.BigEndian.AppendUint64(nil, index+1)
	for k, _ := c.Seek(start); k != nil; k, _ = c.Next() {
		if err := fn(string(k[8:])); err != nil {
			return err
		}
	}
	return nil
}

// ForEachDocument calls fn for every document, in id order.
func (t *Tx) ForEachDocument(fn func(StoredDocument) error) error {
	return t.tx.Bucket(bucketDocuments).ForEach(func(k, v []byte) error {
		var d StoredDocument
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode document %s: %w", k, err)
		}
		return fn(d)
	})
}

// DocumentCount returns how many documents are registered.
func (t *Tx) DocumentCount() int {
	return t.tx.Bucket(bucketDocuments).Stats().KeyN
}
