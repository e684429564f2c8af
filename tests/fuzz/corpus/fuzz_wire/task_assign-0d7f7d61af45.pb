rá@"san*hotadd*nbdssl*nbd:snapshot-18@€€€R/tmp/vbak-test.kL7DfN/site/repoX€€hrJ
sanC/tmp/vbak-test.kL7DfN/site/disks/vm-vmfs-01--vm-vmfs-01@snapshot-18rM
hotaddC/tmp/vbak-test.kL7DfN/site/disks/vm-vmfs-01--vm-vmfs-01@snapshot-18r„
nbdsslznbds://127.0.0.1:11907/vm-vmfs-01--vm-vmfs-01@snapshot-18?tls-certificates=%2Ftmp%2Fvbak-test.kL7DfN%2Fsite%2Ftls%2Fclientr?
nbd8nbd://127.0.0.1:19762/vm-vmfs-01--vm-vmfs-01@snapshot-18‚2000’vm-vmfs-01 / Hard disk 1˜