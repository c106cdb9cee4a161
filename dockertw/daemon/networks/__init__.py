"""Networks: their records and IPAM, the bridges and firewall rules, container
endpoints (CNI), published ports, ``/etc/hosts`` and ``resolv.conf``, the embedded DNS."""
