"""What a container uses: cgroup statistics, stats streams and the processes of top."""
