mkfifo user-data
