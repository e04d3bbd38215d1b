"""parkwatch's tests: real PostgreSQL and Mosquitto, no mocks of either."""
