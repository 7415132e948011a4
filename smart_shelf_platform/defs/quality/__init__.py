"""Asset checks on the important tables (rules in `smart_shelf_platform.quality`)."""
