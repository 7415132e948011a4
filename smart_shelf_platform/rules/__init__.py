"""Pure business rules (no I/O): each rule is one function that its tests exercise directly."""
