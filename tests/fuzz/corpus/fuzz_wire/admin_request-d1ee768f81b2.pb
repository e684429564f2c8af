’~
restores{"rp":9,"to_dir":"/tmp/vbak-test.kL7DfN/bad","to_vm":false,"delete_snapshots":false,"new_vm":null,"datastore":null}