’
agents{}