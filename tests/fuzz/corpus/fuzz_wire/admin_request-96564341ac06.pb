’
job.show	{"id":18}