// Package deploy holds no code: it is the directory of the systemd units
// (systemd/) and example configurations (config/) described in its
// README.md. Its tests load every configuration with the parsers the
// processes use, check that units and configurations agree, and run
// systemd-analyze verify on every unit.
package deploy
