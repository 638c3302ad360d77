// Package policy declares the signing policy, the [epoch], [[approvers]]
// and [[groups]] sections of the cold signer's configuration file, and
// decides, for each signing request, whether it allows it.
//
// # The configuration
//
// The signer has exactly one configuration file, in TOML, documented key by
// key in docs/CONFIG.md, which package signerconf reads (its Config.Policy
// is a Config). Config and the types below it declare the policy sections'
// keys with their toml and conf tags, and check what the tags cannot with
// their CheckConf methods (package conffile calls them), each problem
// reported as a *conffile.Error naming its key path, such as
//
//	groups[1].tiers[0].quorum: must be at least 1
//
// and all problems found are returned together.
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
// It performs no I/O, holds no global mutable state, and never logs. The
// configuration holds no secret (the token PIN is named by a file or an
// environment variable, never written in the file), so errors may quote
// any value from it.
package policy
