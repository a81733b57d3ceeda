"""placeholder"""
def audit_plan(plan, staging):
    return []
