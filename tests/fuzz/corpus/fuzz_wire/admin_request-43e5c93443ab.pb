’@
explain5{"vm":"vm-vmfs-01","agent":"agent-1","restore":false}