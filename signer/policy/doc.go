// Package policy reads the cold signer's configuration file and decides, for
// each signing request, whether policy allows it.
//
// # The configuration file
//
// The signer has exactly one configuration file, in TOML, documented key by
// key in docs/CONFIG.md. It is parsed strictly: a key the signer does not
// know is an error (keys are case-sensitive), every value has one type, file
// paths are absolute, durations are strings such as "24h", and amounts are
// strings in raw ("1000", "1000 raw") or XNO ("0.5 XNO"). Every section is
// validated on its own and against the others; each problem is reported as a
// *ConfigError naming its key path, such as
//
//	groups[1].tiers[0].quorum: must be at least 1
//
// and all problems found are returned together (see Parse). The [signer]
// and [token] sections, the signer's service settings, are declared and
// validated by package signerconf; Config holds them beside the policy.
//
// # Policy
//
// An account belongs to at most one group: the group that lists it under
// accounts, or else the group that lists its wallet; the signer signs for
// no account outside a group. A group limits sends (max_send, velocity_24h), restricts
// destinations and representatives to allowlists, and demands a quorum of
// approvers chosen by the amount (its tiers). Config.Evaluate applies these
// rules in a fixed order and reports the first one broken as a *Violation
// carrying the RefusalReason the signer returns. Config.EvaluateRelease
// decides the release of a recorded frontier (the signer's Release): it
// needs the quorum of the account's group's last tier.
//
// # What this package must never do
//
// It performs no I/O except Load reading the configuration file, holds no
// global mutable state, and never logs. The configuration holds no secret
// (the token PIN is named by a file or an environment variable, never
// written in the file), so errors may quote any value from it.
package policy
