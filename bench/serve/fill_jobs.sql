-- Adds runs :lo..:hi to the service's run queue (`jobs`) of a migrated registry, as the
-- server would have left them, fast: one INSERT per table from generate_series.
--   states: 90% succeeded, 6% failed, 2% cancelled, 2% queued (none running: the
--   orchestrator re-reads every running run's tasks each 100 ms)
--   pipelines: web-00 .. web-19 (spread independently of the state), one output each
--   succeeded runs: a report (records_in/out, one length_filter step), a version, and
--   their plan, map and commit tasks (done, with results); failed runs: a done plan task
--   and a dead map task with its error; queued runs: no tasks, no deadline.
-- Usage: psql -v lo=1 -v hi=10000 -f fill_jobs.sql (search_path set to the registry's schema)
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO pipelines (name, spec, priority, max_slots, created_at, updated_at)
SELECT 'web-' || lpad(p::text, 2, '0'),
       'name: web-' || lpad(p::text, 2, '0') || E'\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\noutput:\n  path: out/web-' || lpad(p::text, 2, '0') || E'\n',
       0, NULL, 1700000000000, 1700000000000
FROM generate_series(0, 19) p
ON CONFLICT (name) DO NOTHING;

CREATE TEMP TABLE fill ON COMMIT DROP AS
SELECT i,
       'web-' || lpad(((i * 2654435761 % 4294967296) * 20 / 4294967296)::text, 2, '0') AS pipeline,
       CASE WHEN i % 100 < 90 THEN 'succeeded' WHEN i % 100 < 96 THEN 'failed'
            WHEN i % 100 < 98 THEN 'cancelled' ELSE 'queued' END AS state,
       1700000000000::bigint + i * 60000 AS created,
       1000 + (i * 7919) % 100000 AS records_in
FROM generate_series(:lo::bigint, :hi::bigint) i;

INSERT INTO jobs (id, pipeline, spec, output, idempotency_key, state, priority, attempt, actor,
                  created_at, started_at, ended_at, deadline, run_id, version, error, report)
SELECT i, pipeline,
       'name: ' || pipeline || E'\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\noutput:\n  path: out/' || pipeline || E'\n',
       'out/' || pipeline,
       CASE WHEN i % 7 = 0 THEN 'key-' || i END,
       state, 0, CASE WHEN i % 50 = 0 THEN 2 ELSE 1 END, 'bench',
       created,
       CASE WHEN state = 'queued' THEN NULL ELSE created + 1000 END,
       CASE WHEN state = 'queued' THEN NULL ELSE created + 31000 END,
       NULL, NULL,
       CASE WHEN state = 'succeeded' THEN pipeline || '@' || (i / 20 + 1) END,
       CASE WHEN state = 'failed' THEN 'task 2 (map 0/0) failed 3 times: input in/part-00.jsonl: line 17: expected value at line 1 column 1' END,
       CASE WHEN state = 'succeeded' THEN json_build_object(
         'bytes_in', records_in * 98, 'curate_version', '0.1.0', 'duplicate_ids', 0, 'elapsed_s', 2.5,
         'pipeline', pipeline, 'quarantined', 0, 'records_in', records_in,
         'records_out', records_in * 9 / 10, 'rejected', records_in - records_in * 9 / 10,
         'steps', json_build_array(json_build_object('dropped', json_build_object('length_filter:min_chars', records_in - records_in * 9 / 10),
                                                     'in', records_in, 'op', 'length_filter', 'out', records_in * 9 / 10)),
         'tasks', 1, 'tasks_resumed', 0, 'threads', 1)::text END
FROM fill;

-- Task ids follow their runs (ORDER BY), as when runs are planned one after another.
INSERT INTO job_tasks (job_id, wave, kind, stage, shard, task_key, state, attempts, not_before, worker, lease_expires, error, result)
SELECT * FROM (
SELECT i, 0::bigint AS wave, 'plan', 0, 0, '', 'done', 1, 0, NULL::text, NULL::bigint, NULL::text, '{"stages":1,"tasks":1}'::text
FROM fill WHERE state IN ('succeeded', 'failed')
UNION ALL
SELECT i, 1, 'map', 0, 0, 'map-0-0', CASE WHEN state = 'succeeded' THEN 'done' ELSE 'dead' END,
       CASE WHEN state = 'succeeded' THEN 1 ELSE 3 END, 0, NULL, NULL,
       CASE WHEN state = 'failed' THEN 'input in/part-00.jsonl: line 17: expected value at line 1 column 1' END,
       CASE WHEN state = 'succeeded' THEN json_build_object('files', 6, 'quarantined', 0, 'records_in', records_in, 'records_out', records_in * 9 / 10,
         'steps', json_build_array(json_build_object('dropped', json_build_object('length_filter:min_chars', records_in - records_in * 9 / 10),
                                                     'in', records_in, 'op', 'length_filter', 'out', records_in * 9 / 10)))::text END
FROM fill WHERE state IN ('succeeded', 'failed')
UNION ALL
SELECT i, 2, 'commit', 0, 0, '', 'done', 1, 0, NULL, NULL, NULL,
       json_build_object('version', pipeline || '@' || (i / 20 + 1), 'run', NULL)::text
FROM fill WHERE state = 'succeeded'
) tasks ORDER BY 1, 2;

SELECT setval('jobs_id_seq', (SELECT max(id) FROM jobs));
COMMIT;
ANALYZE jobs;
ANALYZE job_tasks;
