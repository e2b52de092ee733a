"""Operations on a running system: rebuild projections, find and mend drift."""
