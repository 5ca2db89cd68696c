package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// keys names one cluster restore's keys in etcd:
//
//	PREFIX/attempts/NAME    the current attempt, a decimal number (1, 2, ...):
//	                        agents watch PREFIX/attempts/ for new attempts
//
// and under PREFIX/restores/NAME/:
//
//	ATTEMPT/plan            the attempt's published plan (JSON, attemptRecord)
//	ATTEMPT/votes/NODE      "prepared", or "abort: REASON"
//	ATTEMPT/voters/NODE     who cast the vote (host, database, run): only
//	                        the same voter may vote again
//	ATTEMPT/decision        "commit", or "abort: REASON"; written once
//	ATTEMPT/outcome/NODE    "committed" or "rolled_back"
type keys struct {
	base    string // PREFIX/restores/NAME/
	current string // PREFIX/attempts/NAME
}

func keysOf(prefix, name string) keys {
	return keys{base: NormPrefix(prefix) + "restores/" + name + "/", current: attemptsDir(prefix) + name}
}

// attemptsDir is the directory of every restore's current attempt key.
func attemptsDir(prefix string) string { return NormPrefix(prefix) + "attempts/" }

func (k keys) attempt() string                  { return k.current }
func (k keys) att(a int64) string               { return k.base + strconv.FormatInt(a, 10) + "/" }
func (k keys) plan(a int64) string              { return k.att(a) + "plan" }
func (k keys) votes(a int64) string             { return k.att(a) + "votes/" }
func (k keys) vote(a int64, n string) string    { return k.votes(a) + n }
func (k keys) voter(a int64, n string) string   { return k.att(a) + "voters/" + n }
func (k keys) decision(a int64) string          { return k.att(a) + "decision" }
func (k keys) outcomes(a int64) string          { return k.att(a) + "outcome/" }
func (k keys) outcome(a int64, n string) string { return k.outcomes(a) + n }

// Values of votes, decisions and outcomes.
const (
	votePrepared      = "prepared"
	voteAbort         = "abort"
	decisionCommit    = "commit"
	decisionAbort     = "abort"
	outcomeCommitted  = "committed"
	outcomeRolledBack = "rolled_back"
)

// abortValue is a vote or decision of abort with its reason.
func abortValue(reason string) string {
	if reason == "" {
		return voteAbort
	}
	return voteAbort + ": " + strings.ReplaceAll(reason, "\n", " ")
}

// splitValue splits a vote or decision into its word and reason.
func splitValue(v string) (word, reason string) {
	word, reason, _ = strings.Cut(v, ": ")
	return word, reason
}

// attemptRecord is what the coordinator publishes at ATTEMPT/plan.
type attemptRecord struct {
	// ID tells this attempt from any other of the same name and number
	// (see Tag).
	ID             string        `json:"id"`
	Plan           Plan          `json:"plan"`
	PrepareTimeout time.Duration `json:"prepare_timeout_ns"`
	Published      time.Time     `json:"published"`
	// rev is the plan key's CreateRevision, as read (0: not read from
	// etcd): which publish of attempt N this is, when a restore's keys
	// were deleted and it was published again under the same name.
	rev int64
}

func parseAttemptRecord(b []byte) (*attemptRecord, error) {
	var r attemptRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: published plan: %w", ErrBadPlan, err)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("%w: published plan has no attempt id", ErrBadPlan)
	}
	if err := r.Plan.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Tag is what a node's run is journaled with (kvrflow.Options.Prepare):
// NAME/ATTEMPT/ID, where ID is the attempt's random id (attemptRecord.ID):
// an attempt of the same name and number in another etcd, under another
// prefix, or after etcd was reset, is another attempt.
func Tag(name string, attempt int64, id string) string {
	return name + "/" + strconv.FormatInt(attempt, 10) + "/" + id
}

// ParseTag splits a Tag.
func ParseTag(tag string) (name string, attempt int64, id string, ok bool) {
	parts := strings.Split(tag, "/")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", 0, "", false
	}
	a, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || a <= 0 {
		return "", 0, "", false
	}
	return parts[0], a, parts[2], true
}

// newAttemptID returns a random attempt id (128 bits, hex).
func newAttemptID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
