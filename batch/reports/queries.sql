-- The analyst queries of liveness-audit reports, in SQL that DuckDB and Athena (Trino) both run.
--
-- They read the table `liveness_audit`: one row per session and report, every report column,
-- plus `date` (the night: the report's date= partition, else its run's date), `threshold`
-- (the confidence that passes) and `report` (the file a row came from).
--   * `liveness-audit summarize` and `liveness-audit sql` define it over local or staged
--     S3 reports (threshold from each report's provenance, or --threshold);
--   * on Athena, `liveness-audit schema --athena s3://bucket/prefix/` prints the external
--     table over the hive-partitioned reports and this view of it (threshold fixed there).
-- Then `audit` (below) adds what every page, export and query needs, written once:
--   outcome    pass | fail | pending | expired | error (no status: a per-session error or
--              no answer): every session in exactly one
--   direction  of a disagreement: 'app passed, service failed' (a spoof let through),
--              'app failed, service passed' (a genuine customer refused), 'confidences differ'
--   reason     why a session needs a human look, the first that applies; null: it does not.
--              'fail, app agrees' is a reason the page leaves out by default (the CSV has it).
-- Each statement starts with a `-- name:` line; `liveness-audit sql` and the tests run them.

-- name: audit
CREATE OR REPLACE VIEW audit AS
SELECT
    judged.*,
    CASE
        WHEN direction IS NOT NULL THEN direction
        WHEN error_code LIKE 'Evidence%' THEN 'evidence missing or changed'
        WHEN status IS NULL THEN 'no result: ' || coalesce(error_code, 'no answer')
        WHEN status IN ('CREATED', 'IN_PROGRESS') THEN 'pending: a rerun asks again'
        WHEN app_decision_error IS NOT NULL THEN 'app decision unusable'
        WHEN agrees = true AND service_decision = 'fail' THEN 'fail, app agrees'
        WHEN status = 'SUCCEEDED' AND confidence < threshold THEN 'succeeded below the threshold'
        WHEN status = 'FAILED' THEN 'failed'
        WHEN status = 'EXPIRED' THEN 'expired: no result kept'
    END AS reason
FROM (
    SELECT
        *,
        CASE
            WHEN status = 'SUCCEEDED' AND confidence >= threshold THEN 'pass'
            WHEN status IN ('SUCCEEDED', 'FAILED') THEN 'fail'
            WHEN status IN ('CREATED', 'IN_PROGRESS') THEN 'pending'
            WHEN status = 'EXPIRED' THEN 'expired'
            ELSE 'error'
        END AS outcome,
        CASE
            WHEN agrees = false AND app_decision = 'pass' AND service_decision = 'fail'
                THEN 'app passed, service failed'
            WHEN agrees = false AND app_decision = 'fail' AND service_decision = 'pass'
                THEN 'app failed, service passed'
            WHEN agrees = false THEN 'confidences differ'
        END AS direction
    FROM liveness_audit
) AS judged;

-- name: pass_rate_by_night
-- Sessions, outcomes and the pass rate (of sessions with a result) by night, with the
-- change in pass rate against the night before.
SELECT
    "date",
    sessions,
    passed,
    failed,
    pending,
    expired,
    errors,
    disagreements,
    pass_rate,
    pass_rate - lag(pass_rate) OVER (ORDER BY "date") AS pass_rate_change
FROM (
    SELECT
        "date",
        count(*) AS sessions,
        count(*) FILTER (WHERE outcome = 'pass') AS passed,
        count(*) FILTER (WHERE outcome = 'fail') AS failed,
        count(*) FILTER (WHERE outcome = 'pending') AS pending,
        count(*) FILTER (WHERE outcome = 'expired') AS expired,
        count(*) FILTER (WHERE outcome = 'error') AS errors,
        count(*) FILTER (WHERE agrees = false) AS disagreements,
        CAST(count(*) FILTER (WHERE outcome = 'pass') AS double)
            / nullif(count(*) FILTER (WHERE outcome IN ('pass', 'fail')), 0) AS pass_rate
    FROM audit
    GROUP BY "date"
) AS nights
ORDER BY "date";

-- name: disagreements_by_direction
-- The application's decisions the service contradicts, by night and direction: a spoof
-- let through ('app passed, service failed') first.
SELECT "date", direction, count(*) AS sessions
FROM audit
WHERE direction IS NOT NULL
GROUP BY "date", direction
ORDER BY
    "date",
    CASE direction
        WHEN 'app passed, service failed' THEN 1
        WHEN 'app failed, service passed' THEN 2
        ELSE 3
    END;

-- name: need_a_look_by_reason
-- Sessions that need a human look, by night and reason, most first ('fail, app agrees'
-- included: filter it out as the page does).
SELECT "date", reason, count(*) AS sessions
FROM audit
WHERE reason IS NOT NULL
GROUP BY "date", reason
ORDER BY "date", sessions DESC, reason;
