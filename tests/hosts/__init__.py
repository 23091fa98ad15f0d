"""Real SSH test hosts: network namespaces running sshd in a Debian root of their own."""
