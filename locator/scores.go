package locator

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Bounds of GET /v1/mpi/scores: how many registrations it summarises by default and at
// most, how many link events it reads for them at most (steward actions and rematches
// sit between registrations in the log), and how many histogram bins it draws at most.
const (
	defaultScoreRegistrations  = 2000
	maxScoreRegistrations      = 20000
	scoreEventsPerRegistration = 4
	maxScoreBins               = 40
	// Scores beyond these fall into the first or last bin: a registration of someone
	// already known many times over scores far above anything a threshold decides.
	minScoreAxis = -64.0
	maxScoreAxis = 96.0
	// activityMinutes is how far back the per-minute registration counts reach.
	activityMinutes = 60
)

// ScoreBin is one bar of the score histogram: the registrations whose best candidate
// scored in [From, To), by outcome.
type ScoreBin struct {
	From   float64 `json:"from"`
	To     float64 `json:"to"`
	Linked int     `json:"linked"`
	Review int     `json:"review"`
	New    int     `json:"new"`
}

// ScoreDistribution is the answer of GET /v1/mpi/scores: how the newest registrations
// scored against the thresholds of the current configuration, and how many arrived per
// minute. It names no patient: scores, outcomes and times only.
type ScoreDistribution struct {
	ConfigVersion uint64  `json:"config_version"`
	Upper         float64 `json:"upper"`
	Lower         float64 `json:"lower"`
	// Registrations is how many registrations were summarised (at most the limit asked),
	// EventsRead how many link events were read to find them.
	Registrations int `json:"registrations"`
	EventsRead    int `json:"events_read"`
	// Outcomes counts the registrations by decision; NoCandidate those that met nobody
	// (a new person with no score, left out of the bins).
	Outcomes    map[string]int `json:"outcomes"`
	NoCandidate int            `json:"no_candidate"`
	BinWidth    float64        `json:"bin_width"`
	Bins        []ScoreBin     `json:"bins"`
	// Oldest and Newest are the times of the oldest and newest registration summarised.
	Oldest *time.Time `json:"oldest,omitempty"`
	Newest *time.Time `json:"newest,omitempty"`
	// PerMinute counts registrations per minute over the last hour, oldest first, ending
	// at Now; minutes before Oldest may be undercounted when the limit was reached.
	PerMinute []int     `json:"per_minute"`
	Now       time.Time `json:"now"`
	// Persons is the number of persons in the index, OpenReviews the review items still
	// open.
	Persons     int64 `json:"persons"`
	OpenReviews int   `json:"open_reviews"`
}

// matchScores is GET /v1/mpi/scores?limit=N: the score distribution of the newest
// registrations, for the console's operations page (a histogram with the two thresholds)
// and for anyone tuning the thresholds. It reads a bounded number of events.
func (s *Server) matchScores(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		if name != "limit" && name != "consistency" {
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "parameter %q is not supported here (limit)", name)
		}
	}
	limit := defaultScoreRegistrations
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxScoreRegistrations {
			return fhir.Invalid("limit", "limit must be a whole number from 1 to %d", maxScoreRegistrations)
		}
		limit = n
	}
	now := time.Now().UTC()
	out := ScoreDistribution{Outcomes: map[string]int{}, Now: now, PerMinute: make([]int, activityMinutes)}
	type scored struct {
		score   float64
		outcome string
	}
	var regs []scored
	err := s.node.State().View(func(tx *state.Tx) error {
		cfg, ok, err := tx.MPI().Config()
		if err != nil {
			return err
		}
		if !ok || cfg.Model != mpi.ScoringModel {
			cfg = mpi.DefaultConfig()
		}
		out.ConfigVersion, out.Upper, out.Lower = cfg.Version, cfg.Upper, cfg.Lower
		if out.Persons, err = tx.MPI().PersonCount(); err != nil {
			return err
		}
		err = tx.Reviews(func(e state.ReviewEntry) error {
			if e.Resolution == nil {
				out.OpenReviews++
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.RecentLinkEvents(limit*scoreEventsPerRegistration, func(ev model.LinkEvent) bool {
			out.EventsRead++
			if ev.Action != "registered" {
				return true
			}
			out.Registrations++
			out.Outcomes[ev.Outcome]++
			t := ev.Time.UTC()
			if out.Newest == nil {
				out.Newest = &t
			}
			out.Oldest = &t
			if ago := int(now.Sub(t) / time.Minute); ago >= 0 && ago < activityMinutes {
				out.PerMinute[activityMinutes-1-ago]++
			}
			// A new person that met nobody has no score (the decision says 0).
			if ev.Outcome == string(mpi.OutcomeNew) && ev.Score == 0 {
				out.NoCandidate++
			} else {
				regs = append(regs, scored{ev.Score, ev.Outcome})
			}
			return out.Registrations < limit
		})
	})
	if err != nil {
		return err
	}
	out.BinWidth, out.Bins = scoreBins(out.Lower, out.Upper, len(regs), func(i int) float64 { return regs[i].score })
	for _, r := range regs {
		b := &out.Bins[binOf(out.Bins, out.BinWidth, r.score)]
		switch r.outcome {
		case string(mpi.OutcomeLinked):
			b.Linked++
		case string(mpi.OutcomeReview):
			b.Review++
		default:
			b.New++
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// scoreBins lays out the histogram's axis: from below the lowest score (or the lower
// threshold) to above the highest (or the upper threshold), within [minScoreAxis,
// maxScoreAxis], in whole-bit bins of equal width, at most maxScoreBins of them.
func scoreBins(lower, upper float64, n int, score func(int) float64) (float64, []ScoreBin) {
	lo, hi := lower-4, upper+4
	for i := range n {
		v := score(i)
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	lo, hi = math.Max(math.Floor(lo), minScoreAxis), math.Min(math.Ceil(hi), maxScoreAxis)
	width := math.Max(1, math.Ceil((hi-lo)/maxScoreBins))
	lo = math.Floor(lo/width) * width
	count := int(math.Ceil((hi - lo) / width))
	if lo+float64(count)*width <= hi {
		count++
	}
	bins := make([]ScoreBin, count)
	for i := range bins {
		bins[i] = ScoreBin{From: lo + float64(i)*width, To: lo + float64(i+1)*width}
	}
	return width, bins
}

// binOf is the bin a score falls in; scores beyond the axis fall in its first or last bin.
func binOf(bins []ScoreBin, width, score float64) int {
	i := int(math.Floor((score - bins[0].From) / width))
	return min(max(i, 0), len(bins)-1)
}
