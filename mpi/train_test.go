package mpi

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
)

func trainingRecords() []Record {
	gen := newPersonGenerator(6)
	rng := newTestRand(6)
	var recs []Record
	for i := 0; i < 600; i++ {
		r := gen.person(i)
		recs = append(recs, r)
		if i%2 == 0 {
			recs = append(recs, gen.variant(rng, r, "dup"+strconv.Itoa(i)))
		}
	}
	return recs
}

func TestTrainIsDeterministicAndSensible(t *testing.T) {
	recs := trainingRecords()
	base := DefaultConfig()
	opts := TrainOptions{RandomPairs: 50_000}
	a, stats, err := Train(recs, base, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Train(recs, base, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs on the same records gave different configurations")
	}
	if a.Version != base.Version+1 || a.Upper != base.Upper || a.Lower != base.Lower {
		t.Errorf("version %d thresholds %v/%v", a.Version, a.Upper, a.Lower)
	}
	if stats.BlockedPairs == 0 || stats.RandomPairs != 50_000 || stats.MatchShare <= 0 || stats.MatchShare >= 1 {
		t.Errorf("stats %+v", stats)
	}
	for _, f := range a.Fields {
		exact, last := f.Levels[0], f.Levels[len(f.Levels)-1]
		if exact.Weight <= 0 || last.Weight >= 0 {
			t.Errorf("%s: exact weighs %.2f, %s weighs %.2f", f.Field, exact.Weight, last.Level, last.Weight)
		}
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, a) {
		t.Fatalf("JSON round trip changed the configuration: %v", err)
	}
	c, _, _ := Train(recs, base, TrainOptions{RandomPairs: 50_000, Seed: 99})
	if reflect.DeepEqual(a, c) {
		t.Error("a different seed gave the very same u estimates")
	}
}

func TestTrainErrors(t *testing.T) {
	if _, _, err := Train([]Record{{System: "a", Value: "1"}}, DefaultConfig(), TrainOptions{}); err == nil {
		t.Error("one record trained")
	}
	bad := DefaultConfig()
	bad.Fields[0].Levels = bad.Fields[0].Levels[:2]
	if _, _, err := Train(trainingRecords()[:10], bad, TrainOptions{}); err == nil {
		t.Error("an invalid base trained")
	}
}
