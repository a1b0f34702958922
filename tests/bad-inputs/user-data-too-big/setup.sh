truncate -s 65M user-data
