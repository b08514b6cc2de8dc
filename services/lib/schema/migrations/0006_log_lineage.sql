-- Lineage per Kafka *log*, not per topic name: a topic's offsets restart at
-- 0 when its log is replaced (a broker whose storage is memory restarts, a
-- cluster is rebuilt), and lineage keyed by (topic, partition) alone would
-- then make the sink skip the new log's messages as "already stored". Each
-- raw row now records the cluster id of the broker it was read from, and the
-- lineage is keyed by it; a sink reading a new cluster finds no lineage and
-- reads from the start, its event-id check keeping repeats out.
--
-- Instantiated once per raw table ({raw}); statements shared by every
-- instance run once. The ALTER is not idempotent on 18.16 (no ADD COLUMN IF
-- NOT EXISTS): `migrate` accepts "column already exists" from it.

ALTER TABLE {db}.{raw} ADD COLUMN kafka_cluster String DEFAULT '' AFTER kafka_offset;

CREATE TABLE IF NOT EXISTS {db}.sink_log_lineage (
    raw_table String,
    kafka_cluster String,
    kafka_topic String,
    kafka_partition Int32,
    max_offset UInt64
) ENGINE = ReplacingMergeTree(max_offset)
ORDER BY (raw_table, kafka_cluster, kafka_topic, kafka_partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{raw}_log_lineage_mv TO {db}.sink_log_lineage AS
SELECT
    '{raw}' AS raw_table,
    kafka_cluster,
    kafka_topic,
    kafka_partition,
    max(kafka_offset) AS max_offset
FROM {db}.{raw}
GROUP BY kafka_cluster, kafka_topic, kafka_partition;

-- The topic-keyed lineage of migration 2 is superseded. Rows stored before
-- this migration have kafka_cluster '': a sink re-reads what its broker still
-- retains once, and its event-id check stores none of it twice.
DROP TABLE IF EXISTS {db}.{raw}_lineage_mv;

DROP TABLE IF EXISTS {db}.sink_lineage;
