"""test_rcluster_flood.py with MariaDB as the cluster's system of record on a Redis
Cluster (scripts/cluster up --db mysql --redis-cluster): the floods on three shards
audited against MariaDB, MariaDB compared with every shard's holders, trimming, the
drain restarted after trimming, reconciliation with MariaDB's counts, retirement."""
import test_rcluster_flood

if __name__ == "__main__":
    test_rcluster_flood.main("mysql")
