"""A node's HTTP app over a hub: routes, streams, subscriptions, drain, metrics."""
