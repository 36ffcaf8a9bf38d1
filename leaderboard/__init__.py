"""The leaderboard: the SQL store of trials, and the tables and pages built from it."""
