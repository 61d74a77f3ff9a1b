"""Resource instances: one live (resource, params) query each, shared, refcounted, rebuilt when
what `instantiate` read changes; the claims an instance is built with."""
