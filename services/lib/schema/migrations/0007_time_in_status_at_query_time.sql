-- Time in status is no longer a roll-up (issue #16, item 5). The charger_status
-- views of migration 3 summed the status each raw row ended (prev_status,
-- stamped by the sink from the newest *stored* status), so a status that
-- arrived after a later one was stored ended no interval and split none: the
-- roll-up counted arrival order, not event time. The query service now
-- computes the intervals from raw_connector_status in event-time order when
-- asked (services/query/src/intervals.rs), and the Grafana panel does the same.
--
-- Instantiated once per resolution ({res}: 5m, 1h). The view goes first: it
-- must not outlive its target. raw_connector_status keeps its prev_status and
-- prev_observed_at columns (no longer filled; '' and 0 in new rows) so that a
-- sink of the previous release still inserts during a rolling upgrade; a later
-- migration can drop them. Upgrade the query service and the dashboards before
-- the sink applies this: the new ones read only raw rows, the old ones read
-- the tables dropped here.

DROP TABLE IF EXISTS {db}.charger_status_{res}_mv;

DROP TABLE IF EXISTS {db}.charger_status_{res};
