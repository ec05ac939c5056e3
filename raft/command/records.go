package command

import "github.com/rls-hie/rls/mpi"

// MPIRecord converts the log's patient record to the matcher's.
func (r PatientRecord) MPIRecord() mpi.Record {
	return mpi.Record{
		System: r.System, Value: r.Value, Given: r.Given, Family: r.Family, Suffix: r.Suffix,
		BirthDate: r.BirthDate, Sex: r.Sex, AddressLines: r.AddressLines, City: r.City,
		State: r.State, PostalCode: r.PostalCode, Phones: r.Phones, Email: r.Email, SSN: r.SSN,
	}
}
