"""The simulated store world: catalogue, customers, shelves and warehouse lots, the ledger."""
