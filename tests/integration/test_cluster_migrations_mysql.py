"""test_cluster_migrations.py on MariaDB (scripts/cluster up --db mysql): from an empty
database, from version 001 with orders, drains starting together (GET_LOCK), and a
migration that stopped half-way."""
import test_cluster_migrations

if __name__ == "__main__":
    test_cluster_migrations.main("mysql")
