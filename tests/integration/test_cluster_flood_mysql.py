"""test_cluster_flood.py with MariaDB as the cluster's system of record
(scripts/cluster up --db mysql): the floods audited against MariaDB with
seckill-bench --audit-mysql, MariaDB compared order by order with what Redis holds, the
late order after the window, the stream delivered again, the lifecycle sale (states,
transitions and the trail in MariaDB, delivered again), down."""
import test_cluster_flood

if __name__ == "__main__":
    test_cluster_flood.main("mysql")
