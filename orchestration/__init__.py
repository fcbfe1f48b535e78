"""Creating and following the Prefect flow runs of import jobs: trigger, dispatcher, reconciler.

The Prefect *client* side, shared by the API, the flows and the workers; it imports neither
`flows` nor `deployments`, so those two never import each other.
"""
