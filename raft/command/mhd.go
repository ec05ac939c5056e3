package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file mhd.go -o mhd_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "github.com/rls-hie/rls/raft/model"

// Document sharing commands (IHE MHD), numbered from 21 (after the index maintenance
// commands); the numbers are as permanent as those in command.go.
const (
	// TypeDocumentProvide registers a submission (MHD ITI-65, Provide Document Bundle):
	// its documents and the SubmissionSet List that names them, all or nothing.
	TypeDocumentProvide Type = 23
)

// mhdTypeName names the document sharing commands for Type.String.
func mhdTypeName(t Type) (string, bool) {
	if t.Base() == TypeDocumentProvide {
		return "document-provide", true
	}
	return "", false
}

// DocumentProvide registers Documents (as DocumentRegister does) and stores List, the
// submission set, in one entry: if any document is refused, nothing of the entry is written.
type DocumentProvide struct {
	Documents []DocumentRegistration `json:"documents"`
	List      ListRegistration       `json:"list"`
}

// ListRegistration is a FHIR List (an MHD SubmissionSet) as the registry keeps it: its id
// (derived by the leader from the submission set's unique id), the patient record it is
// about, its holder (the submitting participant) and the resource as sent.
type ListRegistration struct {
	ID            string `json:"id"`
	PatientRecord string `json:"patient_record"`
	Holder        string `json:"holder"`
	Resource      []byte `json:"resource"`
}

// Check holds a submission to the limits: each document as DocumentRegister's, the list's
// id, patient, holder and resource.
func (c *DocumentProvide) Check() error {
	reg := DocumentRegister{Documents: c.Documents}
	if err := reg.Check(); err != nil {
		return err
	}
	if len(c.Documents) == 0 {
		return &model.FieldError{Field: "documents", Reason: "a submission holds at least one document"}
	}
	l := &c.List
	if err := model.CheckID("list.id", l.ID); err != nil {
		return err
	}
	if err := model.CheckRecordKey("list.patient_record", l.PatientRecord); err != nil {
		return err
	}
	if err := model.CheckID("list.holder", l.Holder); err != nil {
		return err
	}
	return checkResource("list.resource", l.Resource)
}
