"""The services the stages talk to, local and production side by side: warehouses, the object
store, Entity Resolution, the job history's resource and mail; `deployment` picks the set."""
