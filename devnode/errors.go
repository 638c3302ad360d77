package devnode

import "errors"

// The node's process errors, with the node's exact messages. Process and
// the "process" RPC return exactly one of these for a rejected block; the
// RPC answers {"error": err.Error()}.
var (
	// Ledger results.
	ErrOld                 = errors.New("Old block")
	ErrBadSignature        = errors.New("Bad signature")
	ErrFork                = errors.New("Fork")
	ErrGapPrevious         = errors.New("Gap previous block")
	ErrGapSource           = errors.New("Gap source block")
	ErrUnreceivable        = errors.New("Unreceivable")
	ErrBalanceMismatch     = errors.New("Balance and amount delta do not match")
	ErrBlockPosition       = errors.New("This block cannot follow the previous block")
	ErrInsufficientWork    = errors.New("Block work is insufficient")
	ErrBurningAccount      = errors.New("Burning account")
	ErrGapEpochOpenPending = errors.New("Gap pending for open epoch block")
	ErrOther               = errors.New("Error processing block")

	// Checks the process RPC makes before the ledger sees the block.
	ErrWorkLow               = errors.New("Block work is less than threshold")
	ErrInvalidSubtype        = errors.New("Invalid block subtype")
	ErrSubtypeBalance        = errors.New("Invalid block balance for given subtype")
	ErrSubtypePrevious       = errors.New("Invalid previous block for given subtype")
	ErrSubtypeEpochLink      = errors.New("Invalid epoch link")
	ErrInvalidBlock          = errors.New("Block is invalid")
	ErrStateFileInconsistent = errors.New("devnode: state file does not replay onto this ledger")
)

// RPC error messages (the node's strings).
const (
	msgUnknownCommand  = "Unknown command"
	msgUnableToParse   = "Unable to parse JSON"
	msgBadAccount      = "Bad account number"
	msgAccountNotFound = "Account not found"
	msgInvalidHash     = "Invalid block hash"
	msgBlockNotFound   = "Block not found"
	msgBadThreshold    = "Bad threshold number"
	msgInvalidCount    = "Invalid count"
	msgBadWork         = "Bad work"
	msgBadDifficulty   = "Bad difficulty"
	msgBadMultiplier   = "Bad multiplier"
	msgDifficultyLimit = "Difficulty above config limit or below publish threshold"
	msgCancelled       = "Cancelled"
	msgOnlyPOST        = "Can only POST requests"
	msgWorkGenFailure  = "Work generation cancellation or failure"
	msgBadWorkVersion  = "Bad work version"
	msgEmptyResponse   = "Empty response"
	msgInternal        = "Internal server error in RPC"
)
