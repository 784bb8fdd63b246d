"""Consumer groups: the registry (ZooKeeper's role), the assignor, a group member, and
the admin operations (list, describe, reset, delete)."""
