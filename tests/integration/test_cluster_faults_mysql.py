"""test_cluster_faults.py with MariaDB as the cluster's system of record
(scripts/cluster up --db mysql), audited with seckill-bench --audit-mysql: kill -9 the
drain during a flood; MariaDB stopped for 20 s; MariaDB killed (kill -9) and started
again."""
import test_cluster_faults

if __name__ == "__main__":
    test_cluster_faults.main("mysql")
