// Herald
