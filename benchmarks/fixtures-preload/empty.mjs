// An empty module: the cost of --import itself, the floor under any preload.
