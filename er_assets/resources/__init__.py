"""The services the stages talk to, local (`local`) and production (`production`) side by side:
warehouses, the object store, Entity Resolution, the match output's files, the job history's
resource and mail; `deployment` picks the set."""
