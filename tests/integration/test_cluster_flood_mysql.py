"""test_cluster_flood.py with MariaDB as the cluster's system of record
(scripts/cluster up --db mysql): the floods audited against MariaDB with
seckill-bench --audit-mysql, MariaDB compared entry by entry with the Redis streams, the
late order after the window, down."""
import test_cluster_flood

if __name__ == "__main__":
    test_cluster_flood.main("mysql")
