-- Two roles besides the owner: the platform writes with smart_shelf_writer, the dashboard reads
-- with smart_shelf_reader. Default privileges cover tables added by later migrations.
DO $$
DECLARE s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['ref', 'config', 'state', 'ops', 'analytics'] LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO smart_shelf_writer, smart_shelf_reader', s);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO smart_shelf_writer', s);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO smart_shelf_reader', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO smart_shelf_writer', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO smart_shelf_reader', s);
    END LOOP;
END $$;
