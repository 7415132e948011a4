-- ops.alerts keeps each alert at its furthest lifecycle step, whatever order the steps arrive in.
--
-- The alerts-mirror sink upserts every step the engines publish (INSERT ... ON CONFLICT DO
-- UPDATE), so on its own the last step to arrive would win and a late or replayed step could
-- move an alert backwards (resolved -> open). This trigger applies the rule of the Delta alerts
-- sink (streaming/alerts_sink.py): a step replaces the row only when its stage is further
-- (open < acknowledged < resolved | dismissed), or it is the same status with a later
-- updated_at; created_at is the earliest seen.

-- Lifecycle position of a status, as alerts_sink.STAGE derives it from rules/alerts.TRANSITIONS
-- (a test holds the two together).
CREATE OR REPLACE FUNCTION ops.alert_stage(status ops.alert_status) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE status
        WHEN 'open' THEN 0
        WHEN 'acknowledged' THEN 1
        WHEN 'resolved' THEN 2
        WHEN 'dismissed' THEN 2
    END
$$;

CREATE OR REPLACE FUNCTION ops.alerts_keep_furthest_step() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF ops.alert_stage(NEW.status) > ops.alert_stage(OLD.status)
       OR (NEW.status = OLD.status AND NEW.updated_at > OLD.updated_at) THEN
        NEW.created_at := least(OLD.created_at, NEW.created_at);
        RETURN NEW;
    END IF;
    -- An earlier (or repeated) step: the row stays, only an earlier created_at is taken.
    IF NEW.created_at < OLD.created_at THEN
        OLD.created_at := NEW.created_at;
        RETURN OLD;
    END IF;
    RETURN NULL;  -- nothing to change: skip the update
END
$$;

DROP TRIGGER IF EXISTS alerts_keep_furthest_step ON ops.alerts;
CREATE TRIGGER alerts_keep_furthest_step BEFORE UPDATE ON ops.alerts
    FOR EACH ROW EXECUTE FUNCTION ops.alerts_keep_furthest_step();
