"""The leader role: campaign, lease, leadership, snapshots, rebuild."""
