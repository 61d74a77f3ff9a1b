"""`skiff dev`: a whole cluster on one machine, on an embedded Valkey."""
