-- Closed value sets (one enum type each), shared by the tables of every schema.

DO $$ BEGIN
    CREATE TYPE ops.foot_traffic_event_type AS ENUM ('entry', 'exit');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.shelf_event_type AS ENUM ('pickup', 'putback', 'weight_change', 'expired_removal');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.shelf_actor AS ENUM ('customer', 'restocker', 'system');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.wh_event_type AS ENUM ('wh_in', 'wh_out', 'wh_removal');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.stock_location AS ENUM ('store', 'warehouse');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.alert_type AS ENUM ('refill_request', 'near_expiry', 'supplier_request', 'near_expiry_discount', 'expired_removal');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.alert_status AS ENUM ('open', 'acknowledged', 'resolved', 'dismissed');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.plan_status AS ENUM ('pending', 'issued', 'completed', 'canceled');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.plan_source AS ENUM ('rule', 'model');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$ BEGIN
    CREATE TYPE ops.order_status AS ENUM ('issued', 'delivered', 'canceled');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

