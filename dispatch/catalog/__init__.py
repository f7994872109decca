"""The dispatch catalog (派单目录): places, unit types, concrete units, rules, community duties, deadlines."""
