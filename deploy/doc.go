// Package deploy holds no code: it is the directory of the systemd units
// (systemd/), example configurations (config/), Prometheus alerting rules
// (prometheus/) and a Grafana dashboard (grafana/) described in its
// README.md. Its tests load every configuration with the parsers the
// processes use, check that units and configurations agree, run
// systemd-analyze verify on every unit, run each binary's config check on
// the configurations of its roles, check and unit-test the alerting
// rules with promtool, and check that the rules and the dashboard use only
// metrics docs/METRICS.md lists.
package deploy
