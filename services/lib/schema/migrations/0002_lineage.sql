-- Which Kafka offsets each raw table already holds: the sink's source of
-- truth when it resumes a partition (see the sink README, "Exactly once").
--
-- One view per raw table ({raw} below; this file is instantiated once per
-- raw table) writes the highest offset of every inserted block, in the same
-- INSERT that writes the rows. Read it with max(max_offset) grouped by
-- (raw_table, kafka_topic, kafka_partition).

CREATE TABLE IF NOT EXISTS {db}.sink_lineage (
    raw_table String,
    kafka_topic String,
    kafka_partition Int32,
    max_offset UInt64
) ENGINE = ReplacingMergeTree(max_offset)
ORDER BY (raw_table, kafka_topic, kafka_partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{raw}_lineage_mv TO {db}.sink_lineage AS
SELECT
    '{raw}' AS raw_table,
    kafka_topic,
    kafka_partition,
    max(kafka_offset) AS max_offset
FROM {db}.{raw}
GROUP BY kafka_topic, kafka_partition;
